-- AlterTable
ALTER TABLE `Photo` ADD COLUMN `picture` VARCHAR(191) NULL;
