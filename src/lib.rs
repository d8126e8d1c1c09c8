//! e-Meterai registration portal: an actix-web application with askama
//! pages, storing accounts with diesel on SQLite or PostgreSQL.

pub mod assets;
pub mod cli;
pub mod config;
pub mod db;
pub mod errors;
pub mod i18n;
pub mod metrics;
pub mod reference;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod web;
