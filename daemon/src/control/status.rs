//! The one place where errors become gRPC statuses.

use tonic::{Code, Status};

use crate::supervisor::Error;

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let code = match &err {
            Error::UnknownModule(_) | Error::UnknownRun(_) | Error::UnknownInstance { .. } => Code::NotFound,
            Error::BadCount(_)
            | Error::BadRunName(_)
            | Error::NoCommand
            | Error::BadRequest(_)
            | Error::BadFaults(_) => Code::InvalidArgument,
            Error::RunExists(_) => Code::AlreadyExists,
            Error::PortsExhausted { .. } | Error::StdinFull(_) => Code::ResourceExhausted,
            Error::NotRunning(_) | Error::NotPaused(_) | Error::FaultsNeedModule(_) => Code::FailedPrecondition,
            Error::ExecNotAllowed => Code::PermissionDenied,
            Error::Spawn { .. } | Error::State { .. } => Code::Internal,
            Error::Stopped => Code::Unavailable,
        };
        Status::new(code, err.to_string())
    }
}

/// A log that cannot be read while streaming it.
pub(super) fn log_unreadable(run: &str, instance: &str, err: &std::io::Error) -> Status {
    Status::internal(format!("cannot read the log of {run}/{instance}: {err}"))
}
