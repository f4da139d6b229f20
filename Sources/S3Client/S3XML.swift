// The XML of S3 replies as a small tree (Foundation's XMLParser does the parsing).
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// One element: its name, its text and its child elements (attributes are not needed by S3 replies).
public final class XMLNode: @unchecked Sendable {
    public let name: String
    public internal(set) var text = ""
    public internal(set) var children: [XMLNode] = []

    init(name: String) { self.name = name }

    /// The first child with this name.
    public subscript(_ child: String) -> XMLNode? { children.first { $0.name == child } }

    public func all(_ child: String) -> [XMLNode] { children.filter { $0.name == child } }

    /// The text of a child, or nil when there is no such child.
    public func value(_ child: String) -> String? { self[child]?.text }

    /// The deepest element accepted: S3 replies are four levels deep; a peer's 100,000 levels would build a tree
    /// whose release recurses as deep (a stack overflow).
    public static let maxDepth = 32

    /// Parses a document; nil when it is not well-formed XML, nests deeper than `maxDepth`, or is not what S3 writes
    /// (`keepsToS3Profile`).
    public static func parse(_ data: Data) -> XMLNode? {
        // Only what S3 writes goes on to libxml2 and FoundationXML's XMLParser: fuzz-s3xml found the parser trapping
        // on an element name that is not UTF-8 and crashing (a NULL strlen) on a processing instruction without data,
        // both from a single reply. See `keepsToS3Profile`.
        guard keepsToS3Profile(data) else { return nil }
        let builder = TreeBuilder()
        let parser = XMLParser(data: data)
        parser.delegate = builder
        guard parser.parse(), !builder.tooDeep, let root = builder.root else { return nil }
        return root
    }
}

extension XMLNode {
    /// Whether a body keeps to what S3 servers write, checked before libxml2 and FoundationXML see it: UTF-8 (an
    /// element name that is not UTF-8 trapped in FoundationXML); at most one XML declaration, at the start (after a
    /// byte order mark), with a version and no encoding but UTF-8 (libxml2 would transcode another); no other
    /// processing instruction (`<?xml?>`, one without data, crashed FoundationXML); no `<!` but comments and CDATA
    /// (no document type declaration: no DTD, no entity to expand).
    static func keepsToS3Profile(_ data: Data) -> Bool {
        guard String(bytes: data, encoding: .utf8) != nil else { return false }
        let bytes = Array(data)
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        if bytes[start...].starts(with: Array("<?xml".utf8)) {
            guard bytes.count > start + 5, [0x20, 0x09, 0x0D, 0x0A].contains(bytes[start + 5]),
                  let end = find(Array("?>".utf8), in: bytes, from: start) else { return false }
            let declaration = String(decoding: bytes[start..<end], as: UTF8.self)
            // A declaration holds attributes only: a `<` or `>` before its `?>` means the `?>` found belongs to a
            // later processing instruction (`<?xml version</Contents><?xmid?>`, which crashed FoundationXML).
            guard declaration.contains("version"), !declaration.dropFirst(5).contains(where: { $0 == "<" || $0 == ">" }) else { return false }
            if let attribute = declaration.range(of: "encoding") {
                let rest = declaration[attribute.upperBound...].drop { " =\t\r\n".contains($0) }
                guard let quote = rest.first, quote == "\"" || quote == "'" else { return false }
                let name = rest.dropFirst().prefix { $0 != quote }.lowercased()
                guard ["utf-8", "utf8", "us-ascii", "ascii"].contains(name) else { return false }
            }
            start = end + 2
        }
        if find(Array("<?".utf8), in: bytes, from: start) != nil { return false }
        var from = start
        while let bang = find(Array("<!".utf8), in: bytes, from: from) {
            guard bytes[bang...].starts(with: Array("<!--".utf8)) || bytes[bang...].starts(with: Array("<![CDATA[".utf8)) else { return false }
            from = bang + 2
        }
        return true
    }

    /// The index of the first `needle` in `bytes` at or after `from`.
    private static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int) -> Int? {
        guard needle.count <= bytes.count else { return nil }
        var i = from
        while i + needle.count <= bytes.count {
            if bytes[i] == needle[0] && bytes[i..<i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

private final class TreeBuilder: NSObject, XMLParserDelegate {
    var root: XMLNode?
    var stack: [XMLNode] = []
    var tooDeep = false

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        guard stack.count < XMLNode.maxDepth else {
            tooDeep = true
            parser.abortParsing()
            return
        }
        let node = XMLNode(name: elementName)
        if let parent = stack.last { parent.children.append(node) } else { root = node }
        stack.append(node)
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
        _ = stack.popLast()
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        stack.last?.text += string
    }
}

/// What the client reads from S3's XML replies, as pure functions of the body (the operations call these; the
/// fuzz target `fuzz-s3xml` in Fuzz/ feeds them arbitrary bytes).
public enum S3Replies {
    /// One ListObjectsV2 page: nil when the body is not a `ListBucketResult` or an entry lacks a key or a size.
    public struct ListPage: Sendable {
        public var objects: [S3Object]
        public var isTruncated: Bool
        public var nextContinuationToken: String?
        /// With a delimiter: the `CommonPrefixes` (decoded), in the server's order.
        public var commonPrefixes: [String] = []
    }

    public static func listPage(_ data: Data) -> ListPage? {
        guard let xml = XMLNode.parse(data), xml.name == "ListBucketResult" else { return nil }
        let urlEncoded = xml.value("EncodingType") == "url"
        var objects: [S3Object] = []
        for entry in xml.all("Contents") {
            guard let rawKey = entry.value("Key"), let size = entry.value("Size").flatMap({ Int64($0) }) else { return nil }
            objects.append(S3Object(key: urlEncoded ? S3Encoding.decode(rawKey) : rawKey, size: size,
                                    etag: unquote(entry.value("ETag") ?? ""), lastModified: entry.value("LastModified") ?? ""))
        }
        var page = ListPage(objects: objects, isTruncated: xml.value("IsTruncated") == "true",
                            nextContinuationToken: xml.value("NextContinuationToken"))
        for common in xml.all("CommonPrefixes") {
            guard let raw = common.value("Prefix") else { return nil }
            page.commonPrefixes.append(urlEncoded ? S3Encoding.decode(raw) : raw)
        }
        return page
    }

    /// The bucket names of a ListBuckets reply; nil when the body is not XML.
    public static func bucketNames(_ data: Data) -> [String]? {
        guard let xml = XMLNode.parse(data) else { return nil }
        return (xml["Buckets"]?.all("Bucket") ?? []).compactMap { $0.value("Name") }
    }

    /// The upload id of a CreateMultipartUpload reply.
    public static func uploadID(_ data: Data) -> String? { XMLNode.parse(data)?.value("UploadId") }

    /// A CompleteMultipartUpload reply (a 200 can carry an `<Error>`): nil when not XML.
    public enum Completion: Sendable, Equatable { case etag(String), error }
    public static func completion(_ data: Data) -> Completion? {
        guard let done = XMLNode.parse(data) else { return nil }
        return done.name == "Error" ? .error : .etag(unquote(done.value("ETag") ?? ""))
    }

    /// An `<Error>` body: its code and message (nil when the body is not one).
    public static func error(_ data: Data) -> (code: String?, message: String)? {
        guard let xml = XMLNode.parse(data), xml.name == "Error" else { return nil }
        return (xml.value("Code"), xml.value("Message") ?? "")
    }

    /// The first key a DeleteObjects reply says could not be deleted (code, key, message), nil when none.
    public static func firstDeleteError(_ data: Data) -> (code: String?, key: String?, message: String?)? {
        guard let xml = XMLNode.parse(data), let failed = xml.all("Error").first else { return nil }
        return (failed.value("Code"), failed.value("Key"), failed.value("Message"))
    }

    /// An ETag without its quotes (as S3 writes them, or XML-escaped).
    public static func unquote(_ etag: String) -> String {
        var e = etag
        for quote in ["&quot;", "&#34;", "\""] {
            if e.hasPrefix(quote) { e.removeFirst(quote.count) }
            if e.hasSuffix(quote) { e.removeLast(quote.count) }
        }
        return e
    }
}
