//! Integration tests: one binary (faster to link on small machines), one module per area.

mod cli;
mod project;
mod sim;
