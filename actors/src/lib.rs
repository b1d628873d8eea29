//! The engine of vectord and the actors around it. Nothing here knows about HTTP: the
//! front in `src/` depends on this crate, never the other way round.
//!
//! Dependencies run one way, from the top of this table to the bottom (a module uses only
//! modules below it; `scripts/check_structure.py` checks that no two modules depend on
//! each other, and CI runs it):
//!
//! | module | owns |
//! |---|---|
//! | `replica` | a read replica's follower: polls the store, loads and swaps in new manifests, applies new log objects |
//! | `registry` | index name → index and actor; creates and deletes indexes; `registry::startup` loads the stored ones at start-up (calling `persist::loader`) |
//! | `index_actor` | the actor that applies one index's mutations in order and runs its background jobs; its protocol (`AddItems`, `DeleteItem`, `DropIndex`) |
//! | `persist` | persistence: the persister actor and its protocol (`persist::persister`), one save (`persist::save`), the load of one index (`persist::loader`), object keys (`persist::layout`) |
//! | `index` | one index without actors: segments, graph builds, search, filters, background jobs; `index::persisted` is what a save takes from it and what a load rebuilds |
//! | `codec` | the LHV1 format: framing, manifests, segments, log objects, 0.1.0 files |
//! | `storaged_client` | vectord's HTTP client of storaged |
//! | `params` | an index's parameters and limits, and the checks on items and queries |
//! | `filter` | the filter language: reading a filter (errors naming where), and matching an item |
//! | `distance`, `error`, `metrics`, `faults`, `sample` | leaves: distances, the error type, Prometheus metrics, a panic hook for tests, seeded vectors |
//!
//! Words, one per concept: **storaged** is the object-storage service (its client:
//! `storaged_client`); **persistence** (`persist`) is how an index is saved to it and
//! loaded back; an index's **stored** state is what storaged holds of it.

pub mod codec;
pub mod distance;
pub mod error;
pub mod faults;
pub mod filter;
pub mod index;
pub mod index_actor;
pub mod metrics;
pub mod params;
pub mod persist;
pub mod registry;
pub mod replica;
pub mod sample;
pub mod storaged_client;
