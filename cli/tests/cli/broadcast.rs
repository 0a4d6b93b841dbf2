//! The broadcasts (chapter 3), launched as real instances.

use super::harness::*;

#[test]
fn best_effort_broadcast_reaches_every_process_once_through_loss_and_duplication() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "BestEffortBroadcast", "4", "--name", "beb", "--detach", "--loss", "0.2", "--dup", "0.1"])?;
    daemon.ok(&["send", "beb/p1", "broadcast", "from one"])?;
    daemon.ok(&["send", "beb/p3", "broadcast", "from three"])?;
    for p in ["p1", "p2", "p3", "p4"] {
        let target = format!("beb/{p}");
        wait_until("both broadcasts", || deliveries(&daemon, &target).is_ok_and(|d| d.len() >= 2))?;
    }
    thread::sleep(Duration::from_millis(300));
    for p in ["p1", "p2", "p3", "p4"] {
        let mut got = deliveries(&daemon, &format!("beb/{p}"))?;
        got.sort();
        assert_eq!(got, ["p1 from one", "p3 from three"], "at {p}");
    }
    Ok(())
}

#[test]
fn reliable_broadcast_delivers_everywhere_once_through_loss() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "ReliableBroadcast", "3", "--name", "rb", "--detach", "--loss", "0.2", "--dup", "0.1"])?;
    daemon.ok(&["send", "rb/p2", "broadcast", "news"])?;
    for p in ["p1", "p2", "p3"] {
        let target = format!("rb/{p}");
        wait_until("the broadcast", || deliveries(&daemon, &target).is_ok_and(|d| !d.is_empty()))?;
    }
    thread::sleep(Duration::from_millis(300));
    for p in ["p1", "p2", "p3"] {
        assert_eq!(deliveries(&daemon, &format!("rb/{p}"))?, ["p2 news"], "at {p}");
    }
    Ok(())
}
