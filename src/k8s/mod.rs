//! The API client and everything said to the API server.
pub mod admin;
pub mod bootstrap;
pub mod bootstrap_tokens;
pub mod client;
pub mod cluster_config;
pub mod cluster_prepare;
pub mod discovery;
pub mod server_version;
