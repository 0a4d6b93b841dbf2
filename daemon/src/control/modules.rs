//! `Modules`: the modules this manager can launch.

use mgr_modules::catalog::{self, ModuleInfo};
use mgr_proto::{Module, ModulesReply, ModulesRequest};
use tonic::Status;

use super::Control;
use crate::supervisor::Error;

pub(super) async fn modules(_control: &Control, req: ModulesRequest) -> Result<ModulesReply, Status> {
    let modules = if req.name.is_empty() {
        catalog::ALL.iter().map(to_proto).collect()
    } else {
        let module = catalog::find(&req.name).ok_or(Error::UnknownModule(req.name))?;
        vec![to_proto(module)]
    };
    Ok(ModulesReply { modules })
}

fn to_proto(m: &ModuleInfo) -> Module {
    Module {
        name: m.name.to_owned(),
        summary: m.summary.to_owned(),
        reference: m.reference.to_owned(),
        description: m.description.to_owned(),
        algorithms: m.algorithms.iter().map(|a| (*a).to_owned()).collect(),
    }
}
