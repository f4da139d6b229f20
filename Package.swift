// swift-tools-version:6.0
// kaleem-backup: backup and disaster recovery for the Kaleem stack.
// Targets and who may import whom, the two seams, adding a source: docs/ARCHITECTURE.md.
import PackageDescription

let package = Package(
    name: "kaleem-backup",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kaleem-backup", targets: ["kaleem-backup"]),
        // The readers a peer or a file feeds, for the fuzz targets in Fuzz/ (a separate package: Fuzz/README.md).
        .library(name: "BackupCore", targets: ["BackupCore"]),
        .library(name: "RedisBackup", targets: ["RedisBackup"]),
        .library(name: "MongoBackup", targets: ["MongoBackup"]),
        .library(name: "TarFormat", targets: ["TarFormat"]),
        .library(name: "S3Client", targets: ["S3Client"]),
        .library(name: "QdrantClient", targets: ["QdrantClient"]),
        .library(name: "ArtifactStore", targets: ["ArtifactStore"]),
        .library(name: "BackupCatalog", targets: ["BackupCatalog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
    ],
    targets: [
        // The system zlib (Debian: zlib1g-dev).
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // glibc's <malloc.h> (mallopt), for the executable's start.
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        // Models, policy, errors. Pure: no I/O, no clock.
        .target(
            name: "BackupCore",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        // The SQLite catalog. The only target that imports GRDB.
        .target(
            name: "BackupCatalog",
            dependencies: ["BackupCore", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift")]
        ),
        // Repository layout, atomic files, streaming gzip and sha256, manifests, the run lock.
        .target(
            name: "ArtifactStore",
            dependencies: ["BackupCore", "CZlib", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // posix_spawn with a clean signal state and no inherited descriptors (scratch redis-servers, scrub commands).
        .target(name: "CleanSpawn"),
        // RESP client, SYNC snapshot, RDB verifier.
        .target(
            name: "RedisBackup",
            dependencies: ["BackupCore", "CleanSpawn"]
        ),
        // mongodump / mongorestore as subprocesses, the archive verifier.
        .target(
            name: "MongoBackup",
            dependencies: [
                "BackupCore",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // A small S3 client: SigV4, ListObjectsV2, Get/Put, multipart, on async-http-client.
        .target(
            name: "S3Client",
            dependencies: [
                "BackupCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The few Qdrant REST calls backups need (collections, aliases, snapshots), on async-http-client.
        .target(
            name: "QdrantClient",
            dependencies: [
                "BackupCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // POSIX pax tar archives: a streaming writer and a strict reader. Pure.
        .target(
            name: "TarFormat",
            dependencies: ["BackupCore"]
        ),
        // The storage seam's S3 side: the repository layout in a bucket (the off-site copy). See docs/ARCHITECTURE.md.
        .target(
            name: "OffsiteStore",
            dependencies: ["BackupCore", "ArtifactStore", "S3Client"]
        ),
        // MinIO/S3 bucket snapshots into a content-addressed blob store, restore to a bucket.
        .target(
            name: "BucketMirror",
            dependencies: [
                "BackupCore", "S3Client", "ArtifactStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Orchestration: backup, list, show, verify, rotate.
        .target(
            name: "BackupEngine",
            dependencies: [
                "BackupCore", "BackupCatalog", "ArtifactStore", "CleanSpawn", "RedisBackup", "MongoBackup", "S3Client", "OffsiteStore", "BucketMirror", "TarFormat", "QdrantClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Commands, one file each, thin over the engine.
        .target(
            name: "BackupCLI",
            dependencies: [
                "BackupCore", "BackupEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["BuildInfo"]
        ),
        // The git commit compiled into BackupCLI (`kaleem-backup --version`).
        .plugin(name: "BuildInfo", capability: .buildTool()),
        .executableTarget(name: "kaleem-backup", dependencies: ["BackupCLI", "BackupCore", "CMalloc"]),

        // Test helpers: real servers on 127.0.0.1, temp directories, the built binary.
        .target(
            name: "TestSupport",
            dependencies: ["BackupCore", "BackupEngine", "RedisBackup", "S3Client"],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "BackupCoreTests", dependencies: ["BackupCore"], exclude: ["Golden"]),
        .testTarget(name: "BackupCatalogTests", dependencies: ["BackupCatalog", "BackupCore", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "ArtifactStoreTests", dependencies: ["ArtifactStore", "OffsiteStore", "S3Client", "BackupCore", "TestSupport", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "RedisBackupTests", dependencies: ["RedisBackup", "BackupCore", "TestSupport"]),
        .testTarget(name: "MongoBackupTests", dependencies: ["MongoBackup", "BackupCore", "ArtifactStore", "TestSupport"]),
        .testTarget(name: "S3ClientTests", dependencies: ["S3Client", "BackupCore", "TestSupport", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "BucketMirrorTests", dependencies: ["BucketMirror", "S3Client", "ArtifactStore", "BackupCore", "TestSupport", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "BackupEngineTests",
            dependencies: ["BackupEngine", "BackupCLI", "BackupCore", "BackupCatalog", "ArtifactStore", "RedisBackup", "MongoBackup", "S3Client", "OffsiteStore", "BucketMirror", "TarFormat", "QdrantClient", "TestSupport",
                           .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOCore", package: "swift-nio")]
        ),
    ]
)
