-- CreateTable
CREATE TABLE "Photo" (
    "id" SERIAL NOT NULL,
    "title" TEXT,
    "image" TEXT,
    "imageMeta" JSONB,
    "imageWidth" INTEGER,
    "imageHeight" INTEGER,
    "scan" TEXT,
    "scanMeta" JSONB,

    CONSTRAINT "Photo_pkey" PRIMARY KEY ("id")
);
