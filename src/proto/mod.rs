//! Prost types generated from the vendored OTLP v1.11.0 protos in `proto/`.
//!
//! Never edited by hand: `tests/proto_in_sync.rs` regenerates them and fails on any difference,
//! and `build.rs` refuses to build when `proto/` changed without regenerating.
#![allow(missing_docs, clippy::all, rustdoc::all)]

pub mod common {
    pub mod v1 {
        include!("opentelemetry.proto.common.v1.rs");
    }
}
pub mod resource {
    pub mod v1 {
        include!("opentelemetry.proto.resource.v1.rs");
    }
}
pub mod trace {
    pub mod v1 {
        include!("opentelemetry.proto.trace.v1.rs");
    }
}
pub mod metrics {
    pub mod v1 {
        include!("opentelemetry.proto.metrics.v1.rs");
    }
}
pub mod logs {
    pub mod v1 {
        include!("opentelemetry.proto.logs.v1.rs");
    }
}
pub mod collector {
    pub mod trace {
        pub mod v1 {
            include!("opentelemetry.proto.collector.trace.v1.rs");
        }
    }
    pub mod metrics {
        pub mod v1 {
            include!("opentelemetry.proto.collector.metrics.v1.rs");
        }
    }
    pub mod logs {
        pub mod v1 {
            include!("opentelemetry.proto.collector.logs.v1.rs");
        }
    }
}
