//! The network-namespace lab and whole-system tests.
