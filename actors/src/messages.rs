//! The messages actors exchange, as plain data named for what they ask.

use actix::prelude::*;
use bytes::Bytes;

use crate::error::IndexError;
use crate::index::{AddOutcome, NewItem};

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

/// Encode the index as LHV1, between two mutations.
#[derive(Message)]
#[rtype(result = "Result<Snapshot, IndexError>")]
pub struct TakeSnapshot;

/// An encoded index and the mutation count it includes.
pub struct Snapshot {
    pub seq: u64,
    pub bytes: Bytes,
}

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

/// To the persister: answer once everything `name` had when this arrived is stored.
/// Answers `Ok(true)` when saved, an error when storaged failed meanwhile.
#[derive(Message)]
#[rtype(result = "Result<bool, IndexError>")]
pub struct Flush {
    pub name: String,
}

/// To the persister: index `name` of `generation` was deleted: cancel its pending save,
/// wait for a save in flight, then delete its object. Answers after the first attempt.
#[derive(Message)]
#[rtype(result = "Result<(), IndexError>")]
pub struct Forget {
    pub name: String,
    pub generation: u64,
}

/// To the persister, at shutdown: save everything pending now; answers when done or
/// when storaged failed.
#[derive(Message)]
#[rtype(result = "Result<(), IndexError>")]
pub struct FlushAll;
