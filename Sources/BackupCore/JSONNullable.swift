import Foundation

/// An optional field that a JSON document always has: nil is written as `null`, never left out (readers of
/// `--json` output and `/status` rely on every key being there). Read back, a missing key or `null` is nil.
///
///     struct RunJSON: Encodable { @JSONNullable var release: String? }   // {"release" : null}
///
/// It replaces hand-written `encode(to:)` that existed only to call `encode` instead of `encodeIfPresent`.
@propertyWrapper
public struct JSONNullable<Value> {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }
}

extension JSONNullable: Encodable where Value: Encodable {
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let wrappedValue { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }
}

extension JSONNullable: Decodable where Value: Decodable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? nil : try c.decode(Value.self)
    }
}

extension KeyedDecodingContainer {
    /// A missing key is nil, as for a plain optional (synthesized decoders call this overload).
    public func decode<Value: Decodable>(_ type: JSONNullable<Value>.Type, forKey key: Key) throws -> JSONNullable<Value> {
        try decodeIfPresent(type, forKey: key) ?? JSONNullable(wrappedValue: nil)
    }
}

extension JSONNullable: Equatable where Value: Equatable {}
extension JSONNullable: Hashable where Value: Hashable {}
extension JSONNullable: Sendable where Value: Sendable {}

extension CodingUserInfoKey {
    /// True in encoders of documents whose readers rely on every key (`--json`): the optional fields of the
    /// models (`ArtifactInfo`, `RunInfo`) are written as `null`; without it (the manifest) a nil field is left out.
    public static let writesNulls = CodingUserInfoKey(rawValue: "kaleem-backup.writesNulls")!
}

extension KeyedEncodingContainer {
    /// An optional field of a model: `null` when the encoder writes nulls (`CodingUserInfoKey.writesNulls`), else
    /// left out when nil.
    public mutating func encodeOptional<T: Encodable>(_ value: T?, forKey key: Key, nulls: Bool) throws {
        if nulls { try encode(value, forKey: key) } else { try encodeIfPresent(value, forKey: key) }
    }
}
