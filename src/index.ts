export {
  CredentialsError,
  FileExistsError,
  FileNotFoundError,
  PrismaS3FilesError,
  StorageError,
  SuspiciousFileOperationError,
} from "./errors.js";
