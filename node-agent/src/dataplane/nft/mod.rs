//! nftables policy: the ruleset as typed data ([`model`]), built from the spec ([`build`]),
//! rendered to `nft -f -` text ([`render`]), compared with the listed table ([`observe`]) and
//! applied atomically ([`apply`]).

pub mod apply;
pub mod build;
pub mod elements;
pub mod model;
pub mod observe;
pub mod render;
