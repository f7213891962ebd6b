-- CreateTable
CREATE TABLE "prisma_s3_files_journal" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "kind" TEXT NOT NULL,
    "storage" TEXT NOT NULL,
    "objectKey" TEXT NOT NULL,
    "owner" TEXT,
    "notBefore" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "lastError" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateIndex
CREATE INDEX "prisma_s3_files_journal_notBefore_idx" ON "prisma_s3_files_journal"("notBefore");

-- CreateIndex
CREATE INDEX "prisma_s3_files_journal_storage_objectKey_idx" ON "prisma_s3_files_journal"("storage", "objectKey");
