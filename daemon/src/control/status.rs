//! The one place where errors become gRPC statuses.

use tonic::{Code, Status};

use super::group::JoinError;
use crate::membership::Refusal;
use crate::supervisor::Error;

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let code = match &err {
            Error::UnknownModule(_) | Error::UnknownRun(_) | Error::UnknownInstance { .. } => Code::NotFound,
            Error::BadCount(_)
            | Error::BadName(_)
            | Error::NoCommand
            | Error::BadRequest(_)
            | Error::LineTooLong(_)
            | Error::BadFaults(_) => Code::InvalidArgument,
            Error::RunExists(_) => Code::AlreadyExists,
            Error::PortsExhausted { .. } | Error::StdinFull { .. } | Error::TooManyLaunches => Code::ResourceExhausted,
            Error::NotRunning(_)
            | Error::NotPaused(_)
            | Error::FaultsNotApplied { .. }
            | Error::NotReserved(_)
            | Error::OtherLaunch(_)
            | Error::HistoryRun(_)
            | Error::RunLive(_) => Code::FailedPrecondition,
            Error::ExecNotAllowed | Error::EnvNotAllowed { .. } => Code::PermissionDenied,
            Error::LimitsOff { .. } => Code::FailedPrecondition,
            Error::Spawn { .. } | Error::State { .. } => Code::Internal,
            Error::Stopped => Code::Unavailable,
        };
        Status::new(code, err.to_string())
    }
}

impl From<crate::names::BadName> for Status {
    fn from(err: crate::names::BadName) -> Status {
        Status::invalid_argument(err.to_string())
    }
}

/// A log that cannot be read while streaming it.
pub(super) fn log_unreadable(run: &str, instance: &str, err: &std::io::Error) -> Status {
    Status::internal(format!("cannot read the log of {run}/{instance}: {err}"))
}

/// An events file that cannot be read while streaming it.
pub(super) fn events_unreadable(run: &str, instance: &str, err: &std::io::Error) -> Status {
    Status::internal(format!("cannot read the events of {run}/{instance}: {err}"))
}

/// Why a call across the group failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum GroupError {
    #[error("{run}/{instance} is lost: its member {member} is dead or out of reach")]
    Lost { run: String, instance: String, member: String },
    #[error("no live member named '{0}' (see: mgrctl members)")]
    NoSuchMember(String),
    #[error("exec is not allowed on member {0} (start it with mgr start --allow-exec)")]
    ExecRefused(String),
    #[error("exec is not allowed on any live member (start mgr with --allow-exec where exec should run)")]
    ExecRefusedEverywhere,
    #[error("{0} is not an IP:PORT address")]
    BadAddress(String),
    #[error("member {0} did not answer in time")]
    Timeout(String),
    #[error("member {0} started no run")]
    NoRun(String),
    #[error("{0} is not a live member of this manager's group")]
    NotAMember(String),
    #[error("member {0} is alive: only a dead member can be forgotten")]
    StillAlive(String),
    #[error("no member named '{0}' (see: mgrctl members)")]
    UnknownMember(String),
}

impl From<GroupError> for Status {
    fn from(err: GroupError) -> Status {
        let code = match &err {
            GroupError::Lost { .. } | GroupError::StillAlive(_) => Code::FailedPrecondition,
            GroupError::NotAMember(_) => Code::PermissionDenied,
            GroupError::NoSuchMember(_) | GroupError::UnknownMember(_) => Code::NotFound,
            GroupError::ExecRefused(_) | GroupError::ExecRefusedEverywhere => Code::PermissionDenied,
            GroupError::BadAddress(_) => Code::InvalidArgument,
            GroupError::Timeout(_) => Code::DeadlineExceeded,
            GroupError::NoRun(_) => Code::Internal,
        };
        Status::new(code, err.to_string())
    }
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Status {
        match refusal {
            // Not a refusal of the caller: it may try again later.
            Refusal::Stopping => Status::unavailable(refusal.to_string()),
            _ => Status::failed_precondition(refusal.to_string()),
        }
    }
}

impl From<JoinError> for Status {
    fn from(err: JoinError) -> Status {
        Status::failed_precondition(err.to_string())
    }
}

/// A member's failure of a forwarded call, as the user reads it.
pub(super) fn on_member_call(member: &str, call: &str, status: Status) -> Status {
    Status::new(status.code(), format!("member {member} could not {call}: {}", status.message()))
}

/// A member's failure as the user reads it: which member, and why (the
/// code stays, so callers can still branch on it).
pub(super) fn on_member(member: &str, status: Status) -> Status {
    Status::new(status.code(), format!("member {member} cannot start its share: {}", status.message()))
}
