//! vectord's binaries share this library: configuration, the HTTP front of vectord, the
//! storaged server, and the bearer-token check both servers use (`auth`). The actor system
//! and everything an index needs live in the `vectord-actors` crate (`actors/`), which
//! knows nothing about HTTP.

pub mod auth;
pub mod config;
pub mod http;
pub mod storaged;
