//! `Modules`: the modules this manager can launch, built-in or from manifests.
//!
//! The registry may wait (up to its scan timeout) for a scan of the
//! manifest folders, so it is asked on a blocking thread, never on a thread
//! that serves other RPCs.

use mgr_proto::{Module, ModulesReply, ModulesRequest};
use tonic::Status;

use super::Control;
use crate::registry::{Entry, SocketMode};
use crate::supervisor::Error;

pub(super) async fn modules(control: &Control, req: ModulesRequest) -> Result<ModulesReply, Status> {
    let registry = control.registry.clone();
    let found = tokio::task::spawn_blocking(move || {
        if req.name.is_empty() {
            let (entries, broken) = registry.list_and_broken();
            let mut list: Vec<Module> = entries.into_iter().map(to_proto).collect();
            list.extend(broken.iter().map(|b| Module {
                manifest: b.path.display().to_string(),
                error: b.error.clone(),
                ..Default::default()
            }));
            Ok(list)
        } else {
            registry.find(&req.name).map(|m| vec![to_proto(m)]).ok_or(Error::UnknownModule(req.name))
        }
    })
    .await
    // A panic in the registry stays a panic, as it was when it ran here; a
    // blocking task is cancelled only when the runtime shuts down.
    .map_err(|err| match err.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => Error::Stopped,
    })??;
    Ok(ModulesReply { modules: found })
}

fn to_proto(m: Entry) -> Module {
    Module {
        name: m.name,
        summary: m.summary,
        reference: m.reference,
        description: m.description,
        algorithms: m.algorithms,
        manifest: m.manifest.map(|p| p.display().to_string()).unwrap_or_default(),
        implements: m.implements.unwrap_or_default(),
        properties: m.properties,
        socket: match m.socket {
            SocketMode::Inherit => "inherit",
            SocketMode::Bind => "bind",
        }
        .to_owned(),
        faults: m.faults,
        error: String::new(),
    }
}
