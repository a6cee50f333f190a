//! Generates the stream's gRPC code from `proto/stream.proto` with protox, a protobuf compiler in
//! pure Rust, so that a fresh clone builds without Debian's `protobuf-compiler`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/stream.proto");
    #[cfg(feature = "grpc")]
    {
        let descriptors = protox::compile(["proto/stream.proto"], ["proto"])?;
        tonic_prost_build::configure().compile_fds(descriptors)?;
    }
    Ok(())
}
