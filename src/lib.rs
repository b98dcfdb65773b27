//! b2b-convert: convert internal Entra ID accounts into B2B collaboration users.
pub mod sim;
