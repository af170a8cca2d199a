//! `tunbox tunnel` and `tunbox genkey`: the I/O around the pure protocol core in
//! [`crate::tunnel`].
pub mod keyfile;
