-- CreateTable
CREATE TABLE `Photo` (
    `id` INTEGER NOT NULL AUTO_INCREMENT,
    `title` VARCHAR(191) NULL,
    `image` VARCHAR(191) NULL,
    `imageMeta` JSON NULL,
    `imageWidth` INTEGER NULL,
    `imageHeight` INTEGER NULL,
    `scan` VARCHAR(191) NULL,
    `scanMeta` JSON NULL,

    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
