//! The actor system of vectord and everything an index needs: the index itself (graph,
//! tables, search), the index actor that serializes its mutations, the registry that maps
//! names to actors, persistence to storaged (`persist`), the LHV1 codec and the
//! storeclient. Nothing here knows about HTTP; the front in `src/` depends on this crate,
//! never the other way round.

pub mod codec;
pub mod distance;
pub mod error;
pub mod faults;
pub mod index;
pub mod index_actor;
pub mod metrics;
pub mod params;
pub mod persist;
pub mod registry;
pub mod sample;
pub mod storeclient;
