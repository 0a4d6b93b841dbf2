//! Fetching a run's merged events from the group (the `Events` RPC) into
//! the checkers' [`RunEvents`], for `events`, `check`, `trace` and
//! `diagram`.

use mgr_modules::check::RunEvents;
use mgr_proto::{EventsRequest, PsRequest};

use crate::client::Client;

/// States of an instance that may still write events.
pub fn is_live(state: &str) -> bool {
    matches!(state, "running" | "paused" | "starting" | "restarting")
}

/// The run's events as they are now, from every member that hosts some
/// (members that are dead are listed in `missing`). `quiesced` is true when
/// no instance of the run is live any more.
pub async fn collect(client: &mut Client, run: &str) -> anyhow::Result<RunEvents> {
    let request = PsRequest { run: run.to_owned(), local: false };
    let reply = match client.ps(request).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(crate::suggest::target(client, run, status).await),
    };
    let info = reply.runs.into_iter().next().ok_or_else(|| anyhow::anyhow!("unknown run '{run}'"))?;
    let mut events = RunEvents {
        run: run.to_owned(),
        module: info.module.clone(),
        processes: info.instances.iter().map(|i| i.name.clone()).collect(),
        quiesced: !info.instances.iter().any(|i| is_live(&i.state)),
        missing_processes: info.instances.iter().filter(|i| i.state == "lost").map(|i| i.name.clone()).collect(),
        // A run of several roles is checked module by module.
        module_of: if info.instances.iter().any(|i| !i.role.is_empty()) {
            info.instances.iter().map(|i| (i.name.clone(), i.module.clone())).collect()
        } else {
            Default::default()
        },
        role_of: info
            .instances
            .iter()
            .filter(|i| !i.role.is_empty())
            .map(|i| (i.name.clone(), i.role.clone()))
            .collect(),
        ..Default::default()
    };
    let request = EventsRequest { run: run.to_owned(), follow: false, local: false };
    let mut stream = client.events(request).await.map_err(crate::commands::status)?.into_inner();
    // A chunk is whole lines of one instance, and an instance's lines come
    // in as many chunks as their size needs (a MiB each), interleaved with
    // other instances' and members': each event names its process, so the
    // lines are added as they come, whatever chunk carried them.
    while let Some(chunk) = stream.message().await.map_err(crate::commands::status)? {
        for member in chunk.missing {
            if !events.missing.contains(&member) {
                events.missing.push(member);
            }
        }
        events.add_lines(&String::from_utf8_lossy(&chunk.lines));
    }
    Ok(events)
}
