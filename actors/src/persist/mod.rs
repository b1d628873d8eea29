//! Persistence of indexes to storaged.
//!
//! Layout in storaged, per index `<name>` (see "Persistence" in `docs/architecture.md`):
//! - `_vectors/<name>.lhv1`: the manifest, the index's one authoritative object;
//! - `_vectors/<name>/<incarnation>/seg-<id>.lhv1`: sealed segments, each written once,
//!   before the manifest that names it;
//! - `_vectors/<name>/<incarnation>/log-<first lsn>.lhv1`: the changes since the oldest
//!   point not yet in a sealed segment, one object per save.
//!
//! - `layout`: the keys;
//! - `objects`: the object operations saves and loads need (storaged's client, or memory
//!   in tests);
//! - `persister`: the actor that debounces and runs saves and deletes, and answers flush;
//!   its protocol (and what it asks of index actors) is defined there;
//! - `save`: one save of one index (a function of its changes and the objects), and the
//!   removal of a deleted index;
//! - `loader`: the load of one stored index and the collection of orphaned objects (the
//!   registry's start-up calls it);
//! - `status`: what is known about each index's saves, for `/health` and the index info.

pub mod layout;
pub mod loader;
pub mod objects;
pub mod persister;
pub mod save;
pub mod status;

#[cfg(test)]
mod tests;
