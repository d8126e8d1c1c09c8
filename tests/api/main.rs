//! Integration tests: one binary, each test with its own application and
//! database. Tests named `postgres` run when TEST_DATABASE_URL is set (and
//! must, in CI).

mod helpers;
mod mail_stub;
mod smtp_sink;

mod assets;
mod backup;
mod cases;
mod db_proxy;
mod details_first;
mod errors;
mod failover;
mod failures;
mod fixture_dates;
mod fuzz;
mod home;
mod layers;
mod limits;
mod mail_events;
mod ops;
mod own_data;
mod pages;
mod photos;
mod pkcs11;
mod register;
mod sealing;
mod self_service;
mod sessions;
mod settings;
mod smtp;
mod staff;
mod status;
