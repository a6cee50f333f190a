//! gingham's fan-out core, in the part of Calico's Typha and Antrea's controller API: the operator
//! computes each shared item (a compiled policy, an IP set, a node's peers) once, and every agent
//! receives exactly its node's span of them, as a snapshot and then deltas by revision. A set that
//! gains one member is one small patch to the nodes whose span holds it, and nothing to the others.
//!
//! [`Hub`] (the serving side's state) and [`Replica`] (the subscriber's copy) are pure. The gRPC
//! transport ([`SpanService`] and [`Follower`], `proto/stream.proto`) sits on top of them; the
//! computation of the items lives in the operator.

#[cfg(feature = "grpc")]
mod auth;
#[cfg(feature = "grpc")]
mod client;
mod hub;
mod item;
mod replica;
#[cfg(feature = "grpc")]
mod server;
#[cfg(feature = "grpc")]
mod tls;
#[cfg(feature = "grpc")]
pub mod wire;

#[cfg(feature = "grpc")]
pub use auth::{AuthFuture, Authenticator, Denied, StaticTokens, Token, TokenError, unknown_token};
#[cfg(feature = "grpc")]
pub use client::{Follower, FollowerState, ServerAddressError, StreamServer};
pub use hub::{Batch, Hub, HubError, Published, SpanAt};
pub use item::{Item, ItemKey, ItemKind, PatchError, Revision, SetPatch};
pub use replica::{Delivery, Replica, ReplicaError, Update};
#[cfg(feature = "grpc")]
pub use server::{Publisher, ServerStats, SpanService, SubscribeStream, serve_tcp, serve_tls, serve_unix};
#[cfg(feature = "grpc")]
pub use tls::{ClientTls, ServerTls, TlsError};

#[cfg(test)]
mod hub_tests;
