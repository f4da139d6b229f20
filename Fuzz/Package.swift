// swift-tools-version:6.0
// libFuzzer targets over the real readers of kaleem-backup (issue #40). A separate package so that the main
// package's `swift build` / `swift test` never see libFuzzer. Build and run: scripts/fuzz-coverage.sh.
// The sanitizers come from the command line (`swift build --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address`,
// scripts/fuzz-coverage.sh says why not `--sanitize address` as well), so every
// module (the readers included, not only these targets) is instrumented for coverage and ASan.
import PackageDescription

let readers: [Target.Dependency] = [
    .product(name: "BackupCore", package: "kaleem-backup"),
    .product(name: "RedisBackup", package: "kaleem-backup"),
    .product(name: "MongoBackup", package: "kaleem-backup"),
    .product(name: "TarFormat", package: "kaleem-backup"),
    .product(name: "S3Client", package: "kaleem-backup"),
    .product(name: "QdrantClient", package: "kaleem-backup"),
    .product(name: "ArtifactStore", package: "kaleem-backup"),
    .product(name: "BackupCatalog", package: "kaleem-backup"),
]

func fuzzTarget(_ name: String, _ deps: [Target.Dependency]) -> Target {
    // One file, not main.swift: compiled as a library (no Swift main); libFuzzer's main drives
    // LLVMFuzzerTestOneInput.
    .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzSupport"] + deps)
}

let package = Package(
    name: "kaleem-fuzz",
    dependencies: [.package(name: "kaleem-backup", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "BackupCore", package: "kaleem-backup")]),
        fuzzTarget("resp", [.product(name: "RedisBackup", package: "kaleem-backup")]),
        fuzzTarget("snapshot", [.product(name: "RedisBackup", package: "kaleem-backup")]),
        fuzzTarget("rdb", [.product(name: "RedisBackup", package: "kaleem-backup")]),
        fuzzTarget("mongo", [.product(name: "MongoBackup", package: "kaleem-backup")]),
        fuzzTarget("tar", [.product(name: "TarFormat", package: "kaleem-backup")]),
        fuzzTarget("policy", [.product(name: "BackupCore", package: "kaleem-backup")]),
        fuzzTarget("cron", [.product(name: "BackupCore", package: "kaleem-backup")]),
        // The second slice: S3 replies, Qdrant envelopes, age, gzip, manifests, catalog copies. These pull
        // async-http-client/NIO, swift-crypto (BoringSSL) and GRDB into the instrumented build (a longer clean build).
        fuzzTarget("s3xml", [.product(name: "S3Client", package: "kaleem-backup")]),
        fuzzTarget("qdrant", [.product(name: "QdrantClient", package: "kaleem-backup")]),
        fuzzTarget("age", [.product(name: "ArtifactStore", package: "kaleem-backup")]),
        fuzzTarget("gzip", [.product(name: "ArtifactStore", package: "kaleem-backup")]),
        fuzzTarget("manifest", [.product(name: "ArtifactStore", package: "kaleem-backup")]),
        fuzzTarget("catalog", [.product(name: "BackupCatalog", package: "kaleem-backup")]),
    ]
)
