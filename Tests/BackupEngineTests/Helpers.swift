import BackupCore
import Foundation
import TestSupport
import Testing

/// Parses a JSON document printed by the CLI.
func json(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
}

func object(_ text: String) throws -> [String: Any] {
    try #require(try json(text) as? [String: Any], "not a JSON object: \(text)")
}

func array(_ text: String) throws -> [[String: Any]] {
    try #require(try json(text) as? [[String: Any]], "not a JSON array: \(text)")
}

/// Every file under `root`, relative.
func filesUnder(_ root: String) -> [String] {
    guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
    var out: [String] = []
    while let p = e.nextObject() as? String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: root + "/" + p, isDirectory: &isDir), !isDir.boolValue { out.append(p) }
    }
    return out.sorted()
}

/// True when `needle` occurs in any file under `root` (to prove a secret was never written).
func anyFileContains(_ root: String, _ needle: String) -> Bool {
    let bytes = Data(needle.utf8)
    return filesUnder(root).contains { rel in
        (FileManager.default.contents(atPath: root + "/" + rel)?.range(of: bytes)) != nil
    }
}
