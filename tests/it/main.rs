//! Integration tests against a real PostgreSQL: one binary, one module per area.

mod support;

mod after_call;
mod cli;
mod console;
mod demo;
mod health;
mod heroku;
mod hostile;
mod inbound;
mod layering;
mod outbound;
mod processes;
mod provider;
mod queue;
mod seams;
mod storage;
mod throwaway_pg;
mod window;
