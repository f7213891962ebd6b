/**
 * Grant tokens: claims are named fields in the code and short keys on the wire. The wire format
 * must not change, so tokens issued before (built here by hand, as the old encoder did) verify.
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  decodeGrantClaims,
  type GrantClaims,
  grantKey,
  signGrantToken,
  verifyGrantToken,
} from "../../src/prisma/grant-token.js";

const key = grantKey("x".repeat(32));

const claims: GrantClaims = {
  id: "AAECAwQFBgcICQoL",
  model: "User",
  field: "avatar",
  key: "_pending/t5abc0-AAECAwQFBgcICQoL/me.png",
  expiresAt: new Date(1_900_000_000 * 1000),
  size: 68,
  contentType: "image/png",
  filename: "me.png",
  checksumSha256: "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
  uploadId: "2~abc",
};

/** A token as the encoder before the named fields made it: the short keys, HMAC over base64url JSON. */
function handBuilt(wire: object): string {
  const payload = Buffer.from(JSON.stringify(wire)).toString("base64url");
  return `psfg1.${payload}.${createHmac("sha256", key).update(payload).digest("base64url")}`;
}

const payloadOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8"));

describe("grant token claims", () => {
  it("round-trip: what the encoder signs verifies to the same named claims", () => {
    expect(verifyGrantToken(signGrantToken(claims, key), key)).toEqual(claims);
    const { checksumSha256: _s, uploadId: _u, ...bare } = claims;
    const decoded = verifyGrantToken(signGrantToken(bare, key), key);
    expect(decoded).toEqual(bare);
    expect("checksumSha256" in decoded || "uploadId" in decoded).toBe(false);
  });

  it("the wire keeps the short keys, in their order", () => {
    const payload = payloadOf(signGrantToken(claims, key));
    expect(Object.keys(payload)).toEqual(["id", "m", "f", "k", "e", "z", "t", "n", "s", "u"]);
    expect(payload).toEqual({
      id: claims.id,
      m: "User",
      f: "avatar",
      k: claims.key,
      e: 1_900_000_000,
      z: 68,
      t: "image/png",
      n: "me.png",
      s: claims.checksumSha256,
      u: "2~abc",
    });
  });

  it("a hand-built token with the short keys (as issued before) decodes to the named fields", () => {
    const wire = {
      id: "g1",
      m: "Post",
      f: "cover",
      k: "_pending/x-g1/c.jpg",
      e: 1_800_000_000,
      z: 5,
      t: "image/jpeg",
      n: "c.jpg",
      s: "abc=",
    };
    expect(verifyGrantToken(handBuilt(wire), key)).toEqual({
      id: "g1",
      model: "Post",
      field: "cover",
      key: "_pending/x-g1/c.jpg",
      expiresAt: new Date(1_800_000_000_000),
      size: 5,
      contentType: "image/jpeg",
      filename: "c.jpg",
      checksumSha256: "abc=",
    });
    // And the encoder makes that very token back from the named fields.
    expect(signGrantToken(verifyGrantToken(handBuilt(wire), key), key)).toBe(handBuilt(wire));
  });

  it("a signed payload missing a claim or with one of the wrong type is GRANT_INVALID", () => {
    const wire = { id: "g", m: "M", f: "f", k: "k", e: 1, z: 1, t: "t", n: "n" };
    expect(decodeGrantClaims(wire)).toBeDefined();
    for (const broken of [
      { ...wire, k: undefined },
      { ...wire, e: "1" },
      { ...wire, z: null },
      { ...wire, u: 7 },
      [],
    ]) {
      expect(decodeGrantClaims(broken)).toBeUndefined();
      expect(() => verifyGrantToken(handBuilt(broken), key)).toThrow(
        expect.objectContaining({ code: "GRANT_INVALID" }),
      );
    }
    expect(() => verifyGrantToken(handBuilt(wire), grantKey("y".repeat(32)))).toThrow(
      expect.objectContaining({ code: "GRANT_INVALID" }),
    );
  });
});
