-- AlterTable
ALTER TABLE "Photo" ADD COLUMN "picture" TEXT;
