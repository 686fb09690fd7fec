//! Integration tests: the real server over real sockets, real sled files in temp dirs,
//! and the real `weir` binary for the CLI, restart and SIGKILL tests.

mod harness;
mod http2;

mod acl;
mod api_errors;
mod benches;
mod canary;
mod cli;
mod cli_plugins;
mod cluster;
mod connection_floods;
mod connectors;
mod console;
mod corruption;
mod deploy;
mod durability;
mod events;
mod faults;
mod groups;
mod hostile;
mod idempotence;
mod kafka;
mod kafka_clients;
mod kafka_sasl;
mod observability;
mod openapi;
mod pipeline_failures;
mod pipelines;
mod polyglot;
mod processors;
mod produce_fetch;
mod reload;
mod replay;
mod retention;
mod security;
mod shadow;
mod tls;
