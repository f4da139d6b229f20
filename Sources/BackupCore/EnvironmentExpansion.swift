/// `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}` and `$$`, as in a
/// Compose file. A bare `$` not followed by `{` or `$` stays as it is (passwords may contain one).
///
/// Unlike a shell, an unset `${VAR}` is an error, not an empty string: a backup policy that silently talks to
/// the wrong place is worse than one that refuses to start.
public enum EnvironmentExpansion {
    public enum Failure: Error, Equatable {
        /// `${VAR}` with VAR unset.
        case unset(variable: String)
        /// `${VAR:?message}` with VAR unset or empty.
        case required(variable: String, message: String)
        /// `${` without its `}`, or an empty or invalid name.
        case malformed(String)
    }

    public static func expand(_ text: String, environment: [String: String]) throws(Failure) -> String {
        guard text.contains("$") else { return text }
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            let ch = text[i]
            guard ch == "$" else { out.append(ch); i = text.index(after: i); continue }
            let next = text.index(after: i)
            if next < text.endIndex, text[next] == "$" {
                out.append("$"); i = text.index(after: next); continue
            }
            guard next < text.endIndex, text[next] == "{" else {
                out.append("$"); i = next; continue
            }
            guard let close = text[next...].firstIndex(of: "}") else { throw .malformed("no closing } after ${") }
            let body = text[text.index(after: next)..<close]
            out += try substitute(String(body), environment: environment)
            i = text.index(after: close)
        }
        return out
    }

    private static func substitute(_ body: String, environment: [String: String]) throws(Failure) -> String {
        let nameEnd = body.firstIndex(where: { !($0.isLetter || $0.isNumber || $0 == "_") }) ?? body.endIndex
        let name = String(body[..<nameEnd])
        guard let first = name.first, first.isLetter || first == "_", first.isASCII else {
            throw .malformed("\"${\(body)}\" has no valid variable name")
        }
        let op = body[nameEnd...]
        let value = environment[name]
        if op.isEmpty {
            guard let value else { throw .unset(variable: name) }
            return value
        }
        func arg(_ prefix: String) -> String { String(op.dropFirst(prefix.count)) }
        if op.hasPrefix(":-") { return (value?.isEmpty ?? true) ? arg(":-") : value! }
        if op.hasPrefix("-") { return value ?? arg("-") }
        if op.hasPrefix(":?") {
            guard let value, !value.isEmpty else { throw .required(variable: name, message: arg(":?")) }
            return value
        }
        if op.hasPrefix("?") {
            guard let value else { throw .required(variable: name, message: arg("?")) }
            return value
        }
        throw .malformed("\"${\(body)}\": expected ${\(name)}, ${\(name):-default} or ${\(name):?message}")
    }
}
