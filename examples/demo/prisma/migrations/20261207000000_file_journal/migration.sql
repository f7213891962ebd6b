-- CreateTable
CREATE TABLE "prisma_s3_files_journal" (
    "id" BIGSERIAL NOT NULL,
    "kind" TEXT NOT NULL,
    "storage" TEXT NOT NULL,
    "objectKey" TEXT NOT NULL,
    "owner" TEXT,
    "notBefore" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "lastError" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "prisma_s3_files_journal_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "prisma_s3_files_journal_notBefore_idx" ON "prisma_s3_files_journal"("notBefore");

-- CreateIndex
CREATE INDEX "prisma_s3_files_journal_storage_objectKey_idx" ON "prisma_s3_files_journal"("storage", "objectKey");
