-- CreateTable
CREATE TABLE `prisma_s3_files_journal` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `kind` VARCHAR(191) NOT NULL,
    `storage` VARCHAR(191) NOT NULL,
    `objectKey` VARCHAR(1024) NOT NULL,
    `owner` VARCHAR(191) NULL,
    `notBefore` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `attempts` INTEGER NOT NULL DEFAULT 0,
    `lastError` TEXT NULL,
    `createdAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `prisma_s3_files_journal_notBefore_idx`(`notBefore`),
    INDEX `prisma_s3_files_journal_storage_objectKey_idx`(`storage`, `objectKey`(512)),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
