-- AlterTable
ALTER TABLE `User` ADD COLUMN `attachment` VARCHAR(191) NULL;
