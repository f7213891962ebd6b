/**
 * The name a client gave an uploaded file (`File.name`, a form's filename, an `upload()`
 * `filename` taken from a request), reduced the way Django reduces uploaded names
 * (`MultiPartParser.sanitize_file_name` and `UploadedFile._set_name`) before it enters the
 * naming pipeline: the client never chooses a directory, and the name fits common file systems.
 */

import mime from "mime";

/** Django cuts uploaded names to this many characters: longer names break many file systems. */
export const MAX_UPLOADED_NAME_LENGTH = 255;

/**
 * Python's `str.isprintable()` is false for control, format, surrogate, private-use and
 * unassigned characters and for every separator but the ASCII space.
 */
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]|(?! )\p{Zs}/gu;

/**
 * The base name of a client-supplied file name, without unprintable characters, cut to 255
 * characters with its extension kept; `undefined` when nothing usable is left (`""`, `.`, `..`),
 * so the caller falls back to a default name.
 */
export function uploadedFileName(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  // Both separators: a browser on Windows may send `C:\Users\me\photo.png`.
  let base = name.slice(Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\")) + 1);
  base = base.replace(NOT_PRINTABLE, "");
  if (base === "" || base === "." || base === "..") return undefined;
  const chars = [...base]; // code points, as Python counts
  if (chars.length > MAX_UPLOADED_NAME_LENGTH) {
    // os.path.splitext: the extension starts at the last dot that is not leading.
    const stem = base.replace(/^\.+/, "");
    const dot = stem.lastIndexOf(".");
    const ext = dot > 0 ? [...stem.slice(dot)].slice(0, MAX_UPLOADED_NAME_LENGTH) : [];
    base = [...chars.slice(0, chars.length - ext.length).slice(0, MAX_UPLOADED_NAME_LENGTH - ext.length), ...ext].join(
      "",
    );
  }
  return base;
}

/** The name of an upload that came without one: `file` with the extension of its content type. */
export function defaultFileName(contentType: string): string {
  const ext = mime.getExtension(contentType);
  return ext ? `file.${ext}` : "file";
}
