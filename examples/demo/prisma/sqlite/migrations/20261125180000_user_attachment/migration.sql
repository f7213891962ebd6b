-- AlterTable
ALTER TABLE "User" ADD COLUMN "attachment" TEXT;
