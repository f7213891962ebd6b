/** What the test page exposes to `page.evaluate`: the browser module and the test bytes. */
import * as directUpload from "../../src/browser/index.js";
import { testBytes } from "./bytes.js";

Object.assign(globalThis, { psf: directUpload, testBytes });
