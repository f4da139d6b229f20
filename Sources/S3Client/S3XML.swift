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

    /// Parses a document; nil when it is not well-formed XML or nests deeper than `maxDepth`.
    public static func parse(_ data: Data) -> XMLNode? {
        let builder = TreeBuilder()
        let parser = XMLParser(data: data)
        parser.delegate = builder
        guard parser.parse(), !builder.tooDeep, let root = builder.root else { return nil }
        return root
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
