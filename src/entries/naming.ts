/**
 * `prisma-s3-files/naming`: Django's file naming rules (`get_valid_filename`,
 * `validate_file_name`, `generate_filename`, `get_available_name`) and `strftime` for
 * `uploadTo` patterns, as the storages apply them.
 */

export {
  generateFilename,
  getAvailableName,
  getValidFilename,
  type UploadTo,
  validateFileName,
} from "../storage/naming.js";
export { strftime } from "../storage/strftime.js";
