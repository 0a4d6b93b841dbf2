//! `mgrctl fault RUN …`: mirrors the `Fault` RPC. Also the fault options
//! that `launch` shares.

use std::io::Write;

use mgr_proto::FaultRequest;

use crate::client::Client;

/// Faults of the links, applied by the module runtime to every datagram.
#[derive(Debug, Clone, clap::Args)]
pub struct LinkFaults {
    /// Drop each datagram with this probability (0 to 1).
    #[arg(long, value_name = "P")]
    pub loss: Option<f64>,
    /// Send each datagram twice with this probability (0 to 1).
    #[arg(long, value_name = "P")]
    pub dup: Option<f64>,
    /// Delay each datagram by a uniform MIN-MAX milliseconds.
    #[arg(long, value_name = "MIN-MAX")]
    pub delay: Option<String>,
}

impl LinkFaults {
    /// The faults as the daemon reads them, e.g. "loss=0.2 delay=10-50".
    pub fn spec(&self) -> String {
        let mut words = Vec::new();
        if let Some(loss) = self.loss {
            words.push(format!("loss={loss}"));
        }
        if let Some(dup) = self.dup {
            words.push(format!("dup={dup}"));
        }
        if let Some(delay) = &self.delay {
            words.push(format!("delay={delay}"));
        }
        words.join(" ")
    }
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  mgrctl fault r1 --loss 0.3 --partition p1,p2/p3   p3 cut off, 30% of datagrams lost\n  mgrctl fault r1 --heal --loss 0                   a perfect network again\n  mgrctl fault r1                                   only show r1's faults now"
)]
pub struct FaultArgs {
    /// The run.
    pub run: String,
    #[command(flatten)]
    pub faults: LinkFaults,
    /// Split the run: blocks separated by '/', e.g. p1,p2/p3,p4; processes in
    /// different blocks cannot reach each other (the unlisted form one more block).
    #[arg(long, value_name = "BLOCKS")]
    pub partition: Option<String>,
    /// Remove the partition.
    #[arg(long, conflicts_with = "partition")]
    pub heal: bool,
}

pub async fn fault(mut client: Client, args: FaultArgs) -> anyhow::Result<u8> {
    // Without a change, the faults are only asked for: nobody is told.
    let asked = args.faults.spec().is_empty() && args.partition.is_none() && !args.heal;
    let request = FaultRequest {
        run: args.run.clone(),
        loss: args.faults.loss,
        dup: args.faults.dup,
        delay: args.faults.delay,
        partition: args.partition,
        heal: args.heal,
        local: false,
    };
    let reply = match client.fault(request).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(crate::suggest::target(&mut client, &args.run, status).await),
    };
    let faults = if reply.faults.is_empty() { "none".to_owned() } else { reply.faults };
    let mut out = crate::stdout::lock();
    if asked {
        writeln!(out, "{}: faults {faults}", args.run)?;
    } else {
        writeln!(out, "{}: faults {faults} (told {} instances)", args.run, reply.told.len())?;
    }
    out.flush()?;
    Ok(0)
}
