import { StoredFile } from "../files/stored-file.js";
import type { Storage } from "../storage/storage.js";

/**
 * The value a declared file column reads as (Django's `FieldFile`): a {@link StoredFile} that
 * also knows which model and field it came from. `user.avatar?.url()`, `.open()`, `.size()`;
 * serializes as its key.
 */
export class FieldFile extends StoredFile {
  readonly #model: string;
  readonly #field: string;

  constructor(storage: Storage, name: string, model: string, field: string) {
    super(storage, name);
    this.#model = model;
    this.#field = field;
  }

  /** The Prisma model the value was read from, e.g. `User`. */
  get model(): string {
    return this.#model;
  }

  /** The file column, e.g. `avatar`. */
  get field(): string {
    return this.#field;
  }
}
