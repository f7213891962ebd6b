-- CreateTable
CREATE TABLE "Photo" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "title" TEXT,
    "image" TEXT,
    "imageMeta" JSONB,
    "imageWidth" INTEGER,
    "imageHeight" INTEGER,
    "scan" TEXT,
    "scanMeta" JSONB
);
