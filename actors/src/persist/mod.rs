//! Persistence of indexes to storaged.
//!
//! Layout in storaged, per index `<name>` (see the README's "Persistence" section):
//! - `_vectors/<name>.lhv1`: the manifest, the index's one authoritative object;
//! - `_vectors/<name>/<incarnation>/seg-<id>.lhv1`: sealed segments, each written once,
//!   before the manifest that names it;
//! - `_vectors/<name>/<incarnation>/log-<first lsn>.lhv1`: the changes since the oldest
//!   point not yet in a sealed segment, one object per save.
//!
//! - `layout`: the keys;
//! - `persister`: the actor that debounces and runs saves and deletes, and answers flush;
//! - `save`: one save of one index, and the removal of a deleted index;
//! - `loader`: the start-up load and the collection of orphaned objects;
//! - `status`: what is known about each index's saves, for `/health` and the index info.

pub mod layout;
pub mod loader;
pub mod persister;
pub mod save;
pub mod status;
