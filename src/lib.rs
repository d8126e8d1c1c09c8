//! e-Meterai registration portal: an actix-web application with askama
//! pages, storing accounts with diesel on SQLite or PostgreSQL.

pub mod assets;
pub mod cli;
pub mod clock;
pub mod compress;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod errors;
pub mod forms;
pub mod hashing;
pub mod i18n;
pub mod mail;
pub mod metrics;
pub mod pkcs11;
pub mod reference;
pub mod routes;
pub mod schema;
pub mod services;
pub mod session;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod web;
pub mod worker;
