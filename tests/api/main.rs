//! Black-box tests of blobproxy against real Redis and a real S3 server. One binary, so the
//! build links once; each test starts its own backends on free ports.

mod helpers;
mod hostile;
mod keys;

mod backfill;
mod bad_input;
mod browser;
mod chaos;
mod cli;
mod cloud_credentials;
mod cluster;
mod deploy_files;
mod docs;
mod drain;
mod durability;
mod fuzz_api;
mod history;
mod idempotency;
mod layout;
mod ledger;
mod mirror_failover;
mod mirrors;
mod monitoring;
mod operators;
mod queue_contract;
mod raw;
mod reconnect;
mod redis_tls;
mod reliability;
mod replication;
mod round_trip;
mod s3_proxy;
mod sentinel;
mod topology;
mod traces;
mod write_through;
mod writes;
