//! `Modules`: the modules this manager can launch, built-in or from manifests.
//!
//! The registry may wait (up to its scan timeout) for a scan of the
//! manifest folders, so it is asked on a blocking thread, never on a thread
//! that serves other RPCs.

use mgr_proto::{Module, ModulesReply, ModulesRequest};
use tonic::Status;

use super::Control;
use crate::registry::Entry;
use crate::supervisor::Error;

pub(super) async fn modules(control: &Control, req: ModulesRequest) -> Result<ModulesReply, Status> {
    let registry = control.registry.clone();
    let found = tokio::task::spawn_blocking(move || {
        if req.name.is_empty() {
            Ok(registry.list())
        } else {
            registry.find(&req.name).map(|m| vec![m]).ok_or(Error::UnknownModule(req.name))
        }
    })
    .await
    // A panic in the registry stays a panic, as it was when it ran here; a
    // blocking task is cancelled only when the runtime shuts down.
    .map_err(|err| match err.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => Error::Stopped,
    })??;
    Ok(ModulesReply { modules: found.into_iter().map(to_proto).collect() })
}

fn to_proto(m: Entry) -> Module {
    Module {
        name: m.name,
        summary: m.summary,
        reference: m.reference,
        description: m.description,
        algorithms: m.algorithms,
        manifest: m.manifest.map(|p| p.display().to_string()).unwrap_or_default(),
    }
}
