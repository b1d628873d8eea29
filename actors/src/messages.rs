//! The messages actors exchange, as plain data named for what they ask.

use actix::prelude::*;

use crate::codec::log::LogBatch;
use crate::error::IndexError;
use crate::index::storage::SealedSegment;
use crate::index::{AddOutcome, IndexParams, NewItem};

/// Add or replace a batch of items (checked inside the actor, all before any change).
#[derive(Message)]
#[rtype(result = "Result<AddOutcome, IndexError>")]
pub struct AddItems {
    pub items: Vec<NewItem>,
}

/// Delete one item.
#[derive(Message)]
#[rtype(result = "Result<(), IndexError>")]
pub struct DeleteItem {
    pub id: String,
}

/// The index was removed from the registry: finish the mutation in progress, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropIndex;

/// To an index actor, between two mutations: hand over the log records collected since
/// the last call and describe the sealed segments, for a save.
#[derive(Message)]
#[rtype(result = "Result<Changes, IndexError>")]
pub struct TakeChanges;

/// What a save needs from an index at one moment (between two mutations).
pub struct Changes {
    /// Mutations applied so far (what `flush` waits for).
    pub seq: u64,
    /// Log sequence number of the last client mutation.
    pub lsn: u64,
    /// Log records since the last `TakeChanges` (lsns follow the previous batch's).
    pub log: LogBatch,
    pub sealed: Vec<SealedSegment>,
    /// The sealed segments hold every change up to this lsn.
    pub covered_lsn: u64,
    pub params: IndexParams,
}

/// To an index actor: freeze the growing segment now (its log has grown long), so that
/// a seal lets the next manifest cover the log.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SealNow;

/// To the persister: index `name` (of this `generation`) changed; `seq` counts its
/// mutations so far.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct MarkDirty {
    pub name: String,
    pub generation: u64,
    pub seq: u64,
    pub actor: Addr<crate::index_actor::IndexActor>,
}

/// To the persister: answer once everything index `name` (of `generation`) had when this
/// arrived is stored. Answers `Ok(true)` when saved, `StorageUnavailable` when the save it
/// waited for failed, `IndexNotFound` when the index was deleted meanwhile.
#[derive(Message)]
#[rtype(result = "Result<bool, IndexError>")]
pub struct Flush {
    pub name: String,
    pub generation: u64,
}

/// To the persister: index `name` of `generation` was deleted (or, for a stored index that
/// failed to load, is to be removed): cancel its pending saves, wait for a save in flight,
/// then delete its stored copy. `first_attempt` hears the outcome of the first attempt; a
/// failed attempt is retried with backoff, and `removed` fires once the stored copy is
/// gone for good. Sent with `do_send`, which queues it even when the persister's mailbox
/// is full (an `Addr::send` would defer it to the first poll of its future, and a client
/// that hangs up before that would lose the delete).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget {
    pub name: String,
    pub generation: u64,
    pub first_attempt: futures::channel::oneshot::Sender<Result<(), IndexError>>,
    pub removed: futures::channel::oneshot::Sender<()>,
}

/// To the persister, at shutdown: save everything pending now; answers when done or
/// when storaged failed.
#[derive(Message)]
#[rtype(result = "Result<(), IndexError>")]
pub struct FlushAll;
