import BackupCore
import Foundation

/// The local repository directory:
///
///     <repo>/catalog.sqlite
///     <repo>/.lock
///     <repo>/<source>/<YYYY-MM-DD>/<artifact-id>.<ext>.gz
///     <repo>/<source>/<YYYY-MM-DD>/<artifact-id>.manifest.json
///     <repo>/<source>/<YYYY-MM-DD>/<artifact-id>.snapshot.json   (bucket sources)
///     <repo>/<source>/blobs/<aa>/<sha256>                       (bucket sources: objects by content)
///
/// Paths recorded in the catalog are relative to the root, so a repository can be moved.
public struct LocalRepository: Sendable {
    public let root: String

    public init(root: String) {
        // Absolute, so that messages and `show` name the real place whatever the working directory.
        self.root = URL(fileURLWithPath: root).standardizedFileURL.path
    }

    /// Creates the root (0700) and checks it can be written, with an error that says how to fix it.
    public func prepare() throws {
        do {
            try FileIO.makeDirectories(root)
        } catch let error as FileSystemError {
            throw FileSystemError("create the repository directory", path: root, code: error.code)
        }
        guard access(root, W_OK | X_OK) == 0 else {
            throw FileSystemError("write to the repository directory", path: root)
        }
    }

    public var lockPath: String { root + "/" + Defaults.lockFileName }
    public var defaultCatalogPath: String { root + "/" + Defaults.catalogFileName }

    /// Relative path of an artifact file: `<source>/<day>/<id>.<ext>.gz`.
    public func relativeArtifactPath(source: String, id: String, createdAt: Date, extension ext: String) -> String {
        "\(source)/\(Timestamps.day(createdAt))/\(id).\(ext).gz"
    }

    /// Relative path of a bucket snapshot's manifest: `<source>/<day>/<id>.snapshot.json` (its objects are
    /// blobs under `<source>/blobs/`).
    public func relativeSnapshotPath(source: String, id: String, createdAt: Date) -> String {
        "\(source)/\(Timestamps.day(createdAt))/\(id).snapshot.json"
    }

    public func absolute(_ relative: String) -> String { root + "/" + relative }

    /// The manifest beside an artifact: `<dir>/<id>.manifest.json`.
    public func manifestPath(forArtifact relative: String, id: String) -> String {
        absolute(relativeManifestPath(forArtifact: relative, id: id))
    }

    /// The same, relative to the root (the manifest's key in the off-site copy).
    public func relativeManifestPath(forArtifact relative: String, id: String) -> String {
        (relative as NSString).deletingLastPathComponent + "/\(id).manifest.json"
    }

    /// Makes the directory that will hold an artifact.
    public func prepareDirectory(forArtifact relative: String) throws {
        try FileIO.makeDirectories((absolute(relative) as NSString).deletingLastPathComponent)
    }

    /// Removes every `*.partial` file under the root (left by a crashed run) and returns their paths.
    /// Call it only while holding the run lock.
    @discardableResult
    public func removePartialFiles() -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var removed: [String] = []
        while let relative = walker.nextObject() as? String {
            // A blob store holds many files and its partial downloads only in blobs/tmp: skip the rest.
            let components = relative.split(separator: "/")
            if components.count == 3, components[1] == "blobs", components[2] != "tmp" {
                walker.skipDescendants()
                continue
            }
            if relative.hasSuffix(AtomicFileWriter.partialSuffix) {
                let path = absolute(relative)
                if unlink(path) == 0 { removed.append(path) }
            }
        }
        return removed
    }

    /// Manifests of artifacts under the repository (`<source>/<day>/*.manifest.json`), counted.
    public func countManifests() -> Int {
        let fm = FileManager.default
        var count = 0
        for source in (try? fm.contentsOfDirectory(atPath: root)) ?? [] where source != "catalog-copy" {
            for day in (try? fm.contentsOfDirectory(atPath: absolute(source))) ?? [] where day != "blobs" {
                count += ((try? fm.contentsOfDirectory(atPath: absolute("\(source)/\(day)"))) ?? []).filter { $0.hasSuffix(".manifest.json") }.count
            }
        }
        return count
    }

    /// Writes the manifest of an artifact atomically.
    public func writeManifest(_ manifest: Manifest) throws {
        let path = manifestPath(forArtifact: manifest.artifact.path, id: manifest.artifact.id)
        try FileIO.writeAtomically(try manifest.encoded(), to: path)
    }
}
