//! Integration tests: real `mgr` daemons (on loopback, or in network
//! namespaces the tests make: `netns.rs`), driven by the real `mgrctl`
//! binary, with real module processes exchanging real UDP datagrams. One test binary for the crate;
//! one file per area.

mod apps_ack;
mod apps_chat;
mod apps_multicast;
mod auth;
mod bounds;
mod broadcast;
mod check_broadcast;
mod check_consensus;
mod check_links;
mod consensus;
mod detectors;
mod events;
mod examples;
mod foundation;
mod fuzz;
mod group;
mod harness;
mod mtest;
mod multihost;
mod netns;
mod papercuts;
mod registers;
mod restart;
mod scale;
mod scenarios;
mod security;
mod semester;
mod service;
mod students;
mod visualize;
mod web;
