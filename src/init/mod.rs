//! `prodserver init`: a commented `prodserver.toml` for the Django project
//! it is run in.

pub mod toml_out;
