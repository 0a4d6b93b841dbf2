//! `Modules`: the modules this manager can launch, built-in or from manifests.

use mgr_proto::{Module, ModulesReply, ModulesRequest};
use tonic::Status;

use super::Control;
use crate::registry::Entry;
use crate::supervisor::Error;

pub(super) async fn modules(control: &Control, req: ModulesRequest) -> Result<ModulesReply, Status> {
    let modules = if req.name.is_empty() {
        control.registry.list().into_iter().map(to_proto).collect()
    } else {
        let module = control.registry.find(&req.name).ok_or(Error::UnknownModule(req.name))?;
        vec![to_proto(module)]
    };
    Ok(ModulesReply { modules })
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
