//! vectord's binaries share this library: configuration, the HTTP front of vectord, and
//! the storaged server. The actor system and everything an index needs live in the
//! `vectord-actors` crate (`actors/`), which knows nothing about HTTP.

pub mod config;
pub mod http;
pub mod storaged;
